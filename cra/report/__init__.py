"""`cra stats`: what the database says about how Claude works, as text, JSON or a self-contained
HTML page with charts. `stats.compute` gathers the numbers; `text` and `html` render them."""
