"""Who is who: the attribute vocabulary, the operators, rules as data, and editors' segments.

=================  ==================================================================
module             what lives there
=================  ==================================================================
``attributes``     the flat attributes rules read, built once per request
``stated``         what the visitor stated, as attributes that overrule inferred ones
``operators``      one record per operator: its test, value parser and words
``values``         checking a rule's value against its attribute (RE2 for patterns)
``rule``           compiling ``{attribute, operator, value}`` trees into fast closures
``segments``       SegmentLibrary: segments/*.yaml, validated and hot-reloaded
=================  ==================================================================
"""
