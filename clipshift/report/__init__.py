"""The study report: conclusions with confidence intervals, tables and plots, in one self-contained HTML
file."""

from clipshift.report.build import ReportSummary, build_report, write_report
from clipshift.report.data import Run, StudyData, load_study
from clipshift.report.findings import Finding

__all__ = ["Finding", "ReportSummary", "Run", "StudyData", "build_report", "load_study", "write_report"]
