"""Shared plumbing that every app may use and that uses no domain app.

Domain errors (:mod:`.errors`), the API's error mapping and pagination (:mod:`.api_errors`,
:mod:`.pagination`), access denial (:mod:`.access`), enqueue-on-commit (:mod:`.enqueue`), the Celery
worker command line (:mod:`.workers`) and the SVG charts of the pages (:mod:`.charts`). It sits just
above ``audit`` and below every domain app: it imports ``audit`` and nothing else of the project.
"""
