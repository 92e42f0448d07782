"""In-process services in front of the stores: caches kept coherent, writes batched after the
response.

=================  ==================================================================
module             what lives there
=================  ==================================================================
``nearcache``      the profile near-cache and write-behind buffer
``profiles``       ProfileService: the only way to the profile store (login merges,
                   traits, erasure, events from other channels)
``counters``       the state service's counter cache and increment buffer
``state``          StateService: the only way to the state store (decision state every
                   worker shares: increments batched, reads cached with a short bound)
``latency``        a cheap histogram of store latency, for the metrics endpoint
=================  ==================================================================
"""
