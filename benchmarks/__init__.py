"""fxflops benchmarks: accuracy, speed, memory and scaling against the peers, in one run.

Run ``python benchmarks/run.py`` (or ``--quick``) from the repository root; see ``README.md``.
Each module has one job: ``models`` and ``reference`` define the workloads and their exact
answers, ``peers`` adapts each other FLOP counter, ``accuracy``/``speed``/``scaling`` (with
``probe``, its fresh-process worker)/``zoo_timing`` measure, ``timing`` and ``machine`` are the
instruments, ``targets`` judges, ``profiling`` explains, ``results`` holds the data, ``report``
and ``plot`` write it out. ``zoo_open_clip.py`` is the zoo benchmark's own script (another owner).
"""
