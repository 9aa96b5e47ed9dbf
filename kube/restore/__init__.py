"""The pure part of restore: per-kind item actions, version choice, order, selection, explanations.

Nothing here talks to the API server, the vault or Temporal: every function takes plain objects
(dicts as exported by :mod:`kube.export`, the backup's index, the target's discovery) and returns
new ones, so the restore workflow's activities stay thin and this logic is unit-tested alone.

- :mod:`~kube.restore.actions`: ``restore_item(obj, ctx)``, the registry of per-kind actions
  (``actions_meta``, ``actions_service``, ``actions_storage``, ``actions_workloads``, ``actions_misc``)
- :mod:`~kube.restore.context`: ``RestoreContext`` and ``ActionResult``
- :mod:`~kube.restore.images`: image references, registry mapping, the ConfigMap rewrite rules
- :mod:`~kube.restore.quantity`: Kubernetes quantities
- :mod:`~kube.restore.versions`: the version each resource is restored at
- :mod:`~kube.restore.order`: restore phases
- :mod:`~kube.restore.selection`: include/exclude filters, namespace mapping validation
- :mod:`~kube.restore.explain`: why a Completed restore lacks something
"""
