"""The GPU queue: short pieces of the study, run on a lent GPU k jobs at a time, proven on the CPU first."""
