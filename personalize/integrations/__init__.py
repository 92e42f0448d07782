"""The few lines each web framework needs around :class:`~personalize.PersonalizeMiddleware`.

One module per framework: :mod:`~personalize.integrations.fastapi`,
:mod:`~personalize.integrations.django`, :mod:`~personalize.integrations.litestar` and
:mod:`~personalize.integrations.quart`. Importing one never imports its framework
(personalize depends on none of them): they use the objects the framework hands over, and
reach for a framework's module only inside a function the framework itself calls.
"""
