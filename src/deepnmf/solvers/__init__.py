"""Pure torch solvers (multiplicative updates)."""
