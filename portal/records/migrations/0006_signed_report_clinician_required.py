"""Every signed report names its clinician: backfill existing reports, then make the link required.

Reports stored before clinicians existed were all signed by portal accounts; each such account
becomes a clinician keyed ("portal", username) and linked to the account. Signed reports are
immutable, so the triggers are lifted for the backfill only and put back afterwards (on SQLite the
table rebuild of the previous migration dropped them; this puts them back too).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from audit.immutability import install, uninstall

TABLE = "records_signedreport"
PORTAL_AUTHORITY = "portal"


def backfill(apps, schema_editor):  # noqa: ANN001
    """One clinician per account that signed a report; every report points at its clinician."""
    connection = schema_editor.connection
    uninstall(connection, [TABLE])
    if connection.vendor == "postgresql":
        # Check the new foreign keys now: deferred checks left pending would make PostgreSQL refuse
        # the ALTER TABLE that follows in this same transaction.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    Clinician = apps.get_model("records", "Clinician")
    SignedReport = apps.get_model("records", "SignedReport")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    signer_ids = SignedReport.objects.filter(clinician__isnull=True).values_list("radiologist_id", flat=True)
    for user in User.objects.filter(pk__in=set(signer_ids)):
        clinician, _ = Clinician.objects.get_or_create(
            authority=PORTAL_AUTHORITY,
            identifier=user.username[:64],
            defaults={"family_name": user.last_name[:128], "given_name": user.first_name[:128], "account": user},
        )
        SignedReport.objects.filter(radiologist=user, clinician__isnull=True).update(clinician=clinician)


def reinstall(apps, schema_editor):  # noqa: ANN001
    install(schema_editor.connection, [TABLE])


class Migration(migrations.Migration):
    dependencies = [("records", "0005_clinicians_inbound_log")]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="signedreport",
            name="clinician",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="signed_reports",
                to="records.clinician",
            ),
        ),
        migrations.RunPython(reinstall, migrations.RunPython.noop, elidable=False),
    ]
