"""Learning algorithms: each one a :class:`~octo.algorithms.base.LocalAlgorithm` with local losses."""
