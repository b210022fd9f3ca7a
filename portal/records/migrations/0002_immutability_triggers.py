"""AI outputs and signed reports refuse UPDATE and DELETE at the database level."""

from django.db import migrations

from audit.immutability import migration_operation


class Migration(migrations.Migration):
    dependencies = [("records", "0001_initial")]

    operations = [migration_operation("records_aioutput", "records_signedreport")]
