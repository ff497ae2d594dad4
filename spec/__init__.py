"""The executable specification: Hypothesis properties of Keras recurrent layers.

One module per chapter; each opens with the behavior in prose, followed by
the properties that prove it. ``rnnspec.spec.adapter`` is the only module that knows
which Keras is installed.
"""
