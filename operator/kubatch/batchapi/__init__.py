"""The AWS Batch API (``kubatch batch-api``): boto3 and the aws CLI, unchanged, against kubatch.

An aiohttp server that speaks AWS Batch's rest-json protocol (``POST /v1/<operation>``, SigV4
signed) and translates each call to and from the four kubatch resources through
:class:`kubatch.adapters.kube.Kube`. Modules: ``errors`` (protocol errors and JSON helpers),
``reader`` (typed, checked access to request bodies), ``sigv4`` (signature verification),
``identity`` (access keys -> namespace, account, admin), ``names`` (AWS names <-> Kubernetes
names, ARNs, annotation keys), ``definitions``/``jobs``/``queues`` (pure translations),
``children`` (array children), ``pagination``, ``operations``/``admin`` (the calls) and
``server``. See docs/aws-api.md.
"""
