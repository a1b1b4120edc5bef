"""Local development stack: PostgreSQL, anvil, the Lambdas in-process and the HTTP front end."""
