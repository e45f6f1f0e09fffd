"""The homogenization study: what sharing one backbone across services costs and buys."""
