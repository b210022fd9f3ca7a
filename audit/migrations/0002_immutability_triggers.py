"""Audit events, Merkle nodes and checkpoints refuse UPDATE, DELETE and TRUNCATE."""

from django.db import migrations

from audit.immutability import migration_operation


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migration_operation("audit_auditevent", "audit_auditnode", "audit_checkpoint")]
