"""Portfolio projections: each user's holdings, value, performance and risk, live."""
