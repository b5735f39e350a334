"""Typed primitives of the proxy language: shape classes, the primitives' torch kernels and their
catalog, DEAP pset, the one fold over trees, text/JSON forms and parser, SymPy forms, packed
statistics, the vectorised evaluator and the DEAP-free program form that exported modules run (see
ARCHITECTURE.md, "Primitives and evaluator")."""
