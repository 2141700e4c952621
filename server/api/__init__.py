"""The HTTP API of the contract: JSON in and out, problem+json errors, bearer-token writes."""
