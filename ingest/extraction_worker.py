"""Imported by the extraction workers' fork server (`ExtractionPool`) before it forks any worker.

It imports the jobs' module and builds the default encoding's tables once, in that server;
every worker forked from it starts with them.
"""

import ingest.extraction_jobs  # noqa: F401  the jobs workers run
from ingest.chunking import warm_up

warm_up()
