"""Fill the queue columns of comparisons stored before they existed; make reviews append-only."""

from django.db import migrations

from audit.immutability import migration_operation


def backfill(apps, schema_editor) -> None:  # noqa: ANN001
    """Copy study date, specialty, modality, model version and radiologist onto older comparisons."""
    Comparison = apps.get_model("review", "Comparison")
    pending = Comparison.objects.filter(study_date__isnull=True).select_related(
        "study", "candidate", "reference"
    )
    for comparison in pending.iterator(chunk_size=2000):
        study = comparison.study
        Comparison.objects.filter(pk=comparison.pk).update(
            study_date=study.study_datetime or study.created_at,
            specialty=study.specialty,
            modality=study.modality,
            model_version_id=comparison.candidate.model_version_id,
            radiologist_id=comparison.reference.radiologist_id,
        )


class Migration(migrations.Migration):
    dependencies = [("review", "0002_review_workflow")]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migration_operation("review_review", "review_discrepancyverdict"),
    ]
