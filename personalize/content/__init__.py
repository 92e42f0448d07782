"""What each visitor sees: slots, variants, the editors' mapping, and the decision engine.

=================  ==================================================================
module             what lives there
=================  ==================================================================
``slots``          the records: Slot, Variant, Cap, MappingRule
``loading``        content/*.yaml into those records, every problem with file:line
``library``        ContentLibrary: the loaded slots, hot-reloaded
``render``         sandboxed templates and Markdown of variants
``schedule``       when a variant may show, in the visitor's local time
``mapping``        the first mapping rule a visitor matches, and why
``suppression``    what context forbids: recent purchases, open tickets, caps
``offers``         what the visitor said about offers: never, sometimes, no history
``policy``         Thompson sampling on expected value, per context bucket
``subject``        who a decision is for (a visitor, or a preview)
``explanation``    Explanation: the engine's record of why (rule, removals, scores)
``wording``        the same in plain words for the visitor (no ids, numbers or files)
``decisions``      DecisionEngine: all of the above for one slot, explained
=================  ==================================================================
"""
