"""The study report: conclusions with confidence intervals, tables and plots, in one self-contained HTML
file."""

from clipshift.analysis.data import Run, StudyData
from clipshift.analysis.finding import Finding
from clipshift.report.build import ReportSummary, build_report, write_report
from clipshift.report.data import read_study_dir

__all__ = ["Finding", "ReportSummary", "Run", "StudyData", "build_report", "read_study_dir", "write_report"]
