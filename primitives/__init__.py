"""Typed primitives of the proxy language: shape classes, primitive catalog, DEAP pset, text/JSON
forms and parser, SymPy forms, packed statistics and the vectorised evaluator (see ARCHITECTURE.md,
"Primitives and evaluator")."""
