"""The application: the discovery job, its run folder, the ``circuits`` command line, the
report and its figures."""
