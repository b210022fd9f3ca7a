"""Attribution (who erred: the signed report or the AI draft), word marks, the signing clinician.

Reviews and verdicts are immutable, so their triggers are lifted for the backfill only and put back at
the end (on SQLite the table rebuilds of this migration drop them too). Reviews stored before
attribution existed keep their score; a discrepant one (2a-3b) is read as "the radiologist erred",
which is what the score claimed when it was given.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from audit.immutability import install, uninstall

TABLES = ["review_review", "review_discrepancyverdict"]


def backfill(apps, schema_editor):  # noqa: ANN001
    """Older reviews: discrepant scores mark the radiologist as erring; cases name their clinician."""
    connection = schema_editor.connection
    uninstall(connection, TABLES)
    if connection.vendor == "postgresql":
        # Deferred foreign-key checks left pending would make PostgreSQL refuse the ALTER TABLEs that
        # follow in this same transaction.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    Review = apps.get_model("review", "Review")
    Review.objects.filter(radpeer__in=["2a", "2b", "3a", "3b"]).update(radiologist_erred=True)
    Comparison = apps.get_model("review", "Comparison")
    SignedReport = apps.get_model("records", "SignedReport")
    pending = Comparison.objects.filter(clinician__isnull=True).values_list("pk", "reference_id")
    for pk, reference_id in pending.iterator(chunk_size=2000):
        clinician_id = SignedReport.objects.filter(pk=reference_id).values_list("clinician_id", flat=True)
        Comparison.objects.filter(pk=pk).update(clinician_id=clinician_id.first())


def reinstall(apps, schema_editor):  # noqa: ANN001
    install(schema_editor.connection, TABLES)



class Migration(migrations.Migration):

    dependencies = [
        ('records', '0007_study_without_accession'),
        ('review', '0004_committee_rollup'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='review',
            name='review_radpeer_valid',
        ),
        migrations.AddField(
            model_name='comparison',
            name='clinician',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='records.clinician'),
        ),
        migrations.AddField(
            model_name='dailystat',
            name='ai_errors',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dailystat',
            name='carried',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dailystat',
            name='radiologist_errors',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dailystat',
            name='reviewed',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='discrepancy',
            name='candidate_marks',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='discrepancy',
            name='reference_marks',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='discrepancyverdict',
            name='carried_into_report',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='discrepancyverdict',
            name='correct_side',
            field=models.CharField(blank=True, choices=[('signed_report', 'Signed report (the AI draft erred)'), ('ai_draft', 'AI draft (the signed report erred)'), ('both_acceptable', 'Both acceptable (wording or style)'), ('indeterminate', 'Indeterminate from the images')], max_length=16),
        ),
        migrations.AddField(
            model_name='review',
            name='ai_erred',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='review',
            name='carried_ai_error',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='review',
            name='radiologist_erred',
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name='discrepancy',
            name='category',
            field=models.CharField(choices=[('internal_contradiction', 'Internal contradiction'), ('false_finding', 'False finding'), ('missed_finding', 'Missed finding'), ('location', 'Location / laterality'), ('severity', 'Severity / size'), ('comparison_added', 'Comparison added'), ('comparison_omitted', 'Comparison omitted'), ('certainty', 'Certainty')], max_length=32),
        ),
        migrations.AlterField(
            model_name='discrepancyverdict',
            name='category',
            field=models.CharField(blank=True, choices=[('internal_contradiction', 'Internal contradiction'), ('false_finding', 'False finding'), ('missed_finding', 'Missed finding'), ('location', 'Location / laterality'), ('severity', 'Severity / size'), ('comparison_added', 'Comparison added'), ('comparison_omitted', 'Comparison omitted'), ('certainty', 'Certainty')], max_length=32),
        ),
        migrations.AlterField(
            model_name='review',
            name='radpeer',
            field=models.CharField(blank=True, choices=[('1', '1 - Concur with interpretation'), ('2a', '2a - Discrepancy, not ordinarily expected to be made; unlikely significant'), ('2b', '2b - Discrepancy, not ordinarily expected; likely significant'), ('3a', '3a - Discrepancy, should be made most of the time; unlikely significant'), ('3b', '3b - Discrepancy, should be made most of the time; likely significant')], max_length=2),
        ),
        migrations.AddConstraint(
            model_name='discrepancyverdict',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('verdict', 'not_a_discrepancy'), _negated=True), models.Q(('correct_side', ''), ('carried_into_report', False)), _connector='OR'), name='verdict_no_attribution_when_rejected'),
        ),
        migrations.AddConstraint(
            model_name='discrepancyverdict',
            constraint=models.CheckConstraint(condition=models.Q(('carried_into_report', False), models.Q(('correct_side__in', ['', 'both_acceptable']), _negated=True), _connector='OR'), name='verdict_carried_error_is_an_error'),
        ),
        migrations.AddConstraint(
            model_name='review',
            constraint=models.CheckConstraint(condition=models.Q(('radpeer__in', ['1', '2a', '2b', '3a', '3b', ''])), name='review_radpeer_valid'),
        ),
        migrations.AddConstraint(
            model_name='review',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('radiologist_erred', True), ('radpeer__in', ('2a', '2b', '3a', '3b'))), models.Q(('radiologist_erred', False), ('radpeer__in', ['', '1'])), _connector='OR'), name='review_radpeer_follows_attribution'),
        ),
        migrations.AddConstraint(
            model_name='review',
            constraint=models.CheckConstraint(condition=models.Q(('carried_ai_error', False), models.Q(('radiologist_erred', True), ('ai_erred', True)), _connector='OR'), name='review_carried_error_is_both'),
        ),
        migrations.RunPython(reinstall, migrations.RunPython.noop, elidable=False),
    ]
