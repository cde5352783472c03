"""``colorize batch``: many videos, unattended, on every GPU of this machine or on a Ray cluster.

``plan``      what to do: videos, their references and options, outputs (folder or manifest);
``results``   ``OUTDIR/batch.jsonl``, one line per finished video, and the rule for skipping;
``tasks``     the work one worker does (a video, a shot, a stitch), the model loaded once per process;
``executor``  the interface both executors share; ``local`` (worker processes) and
              ``ray_executor`` (Ray tasks; the only module that imports Ray);
``runner``    the driver: submits tasks, writes results (only the driver writes them), progress;
``estimate``  the ``--dry-run`` time estimate; ``cli`` the command.

Nothing here imports torch or Ray at import time.
"""
