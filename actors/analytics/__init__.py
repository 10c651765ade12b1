"""Analytics projections: cores that fold the store's fact feeds into persisted results.

`runner` tails a feed for one projection and saves its results with its checkpoint;
`book` keeps sales per card × grader × grade in memory; `prices` (sharded by card) turns
sales into vetted sales lists, candles and segment values; `market` into the market indexes,
movers and totals; `behaviour` turns closed auctions into users' bidding behaviour. The Ray
actor that hosts them is `actors.analytics.actor`. The maths are pure, in `market/`.
"""
