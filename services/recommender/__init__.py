"""The recommender service (in progress: collaborative scorers, ranking steps and the item index so far)."""
