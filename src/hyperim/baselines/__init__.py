"""Non-neural baselines: label frequency and TF-IDF + one-vs-rest logistic regression."""

from hyperim.baselines.frequency import FrequencyBaseline, label_frequencies
from hyperim.baselines.tfidf import TfidfBaseline, tune_tfidf

__all__ = ["FrequencyBaseline", "TfidfBaseline", "label_frequencies", "tune_tfidf"]
