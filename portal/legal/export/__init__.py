"""Legal export packages: a signed, self-verifying ZIP of what the AI said and what the doctor signed.

``builder.build_package`` writes one package incrementally (memory stays flat whatever the scope);
``portal.legal.export_jobs`` runs it as an audited job. The standalone verifier is
``audit/verify_package.py`` (copied into every package); docs/export.md describes the layout.
"""
