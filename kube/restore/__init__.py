"""Restore, in Kubernetes terms (like Velero's pkg/restore and its actions).

Talking to the API server and the vault (the restore activities' domain code):

- :mod:`~kube.restore.apply`: creating restored objects, many at a time, one outcome per object
- :mod:`~kube.restore.run`: one phase from the vault into the cluster; what is missing at the end
- :mod:`~kube.restore.target`: what the target cluster serves, and the plan of phases there
- :mod:`~kube.restore.volumes`: how restored PVCs get their data, and the temporary snapshot objects
- :mod:`~kube.restore.records`: where a restore keeps its working data in the vault

Pure (no API server, vault or Temporal: plain objects in, new ones out, unit-tested alone):

- :mod:`~kube.restore.actions`: ``restore_item(obj, ctx)``, the registry of per-kind actions
  (``meta``, ``service``, ``storage``, ``workloads``, ``misc``)
- :mod:`~kube.restore.context`: ``RestoreContext`` and ``ActionResult``
- :mod:`~kube.restore.images`: image references, registry mapping, the ConfigMap rewrite rules
- :mod:`~kube.restore.quantity`: Kubernetes quantities
- :mod:`~kube.restore.versions`: the version each resource is restored at
- :mod:`~kube.restore.order`: restore phases
- :mod:`~kube.restore.selection`: include/exclude filters, namespace mapping validation
- :mod:`~kube.restore.explain`: why a Completed restore lacks something
"""
