"""Pictures of a trained model: the Poincaré disk of its labels and of one document's words.

:mod:`hyperim.viz.disk` has the coordinates (numpy only), :mod:`hyperim.viz.scene` what a
picture shows as plain arrays, :mod:`hyperim.viz.plots` draws them with matplotlib.
"""
