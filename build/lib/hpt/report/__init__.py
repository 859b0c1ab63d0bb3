"""Reports over runs: the table, the convergence plot and HPT's speed-up."""
