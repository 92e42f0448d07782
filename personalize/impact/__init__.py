"""Does personalization pay? The holdout's exposures and outcomes, and the uplift.

=================  ==================================================================
module             what lives there
=================  ==================================================================
``stats``          uplift of personalized over holdout, with always-valid intervals
``simulate``       experiments with a known uplift: coverage and false positives
=================  ==================================================================

Who is held out, and what they see, is the content engine's
(:mod:`personalize.content.holdout`).
"""
