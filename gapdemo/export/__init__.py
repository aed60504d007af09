"""Export figures, tables and runs as files, by format and by what is exported.

    formats  a figure as self-contained HTML, a table as CSV
    png      a figure as PNG through one shared headless Chromium (found, started once, kept)
    bundle   a run's charts, tables and files: one zip (run_zip, files_zip) or a folder (export_run)

Import from the module you need: this package re-exports nothing.
"""
