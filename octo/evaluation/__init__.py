"""Evaluation beyond accuracy: locality checks, resilience, specialization."""
