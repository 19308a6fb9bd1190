"""Studies: many searches run as one resumable job and scored on a tabular benchmark.

- :mod:`nasforge.studies.proxy_data`: the chapter-3 study (``nasforge study proxy``):
  selectors × subset sizes × seeds × algorithms, with full-data baselines.
- :mod:`nasforge.studies.algorithms`: the zoo comparison (``nasforge study algorithms``),
  the same runs summarised per algorithm.

They sit above ``search/`` and ``proxy/``: a study drives both, neither knows about studies.
"""
