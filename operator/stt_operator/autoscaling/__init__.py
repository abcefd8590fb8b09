"""Queue-depth autoscaling: the HPA's decision rules over scraped server metrics, run by a kopf timer."""
