"""The recommender service (in progress: collaborative signal so far)."""
