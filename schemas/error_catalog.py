"""The product's error catalogue: every code, its message, likely causes and fixes.

Messages follow the reference product's wording (requirements.md) where one exists, so that
operators who know it recognise them.  Areas append their codes here; keep codes sorted by area.
"""

from __future__ import annotations

from functools import partial

from schemas.error_codes import ErrorCode
from schemas.error_codes import register as _register

E = ErrorCode
CATALOGUE: dict[str, ErrorCode] = {}
register = partial(_register, CATALOGUE)

register(
    # --- input and specs -------------------------------------------------------------------
    E(
        code="InvalidSpec",
        kind="ValidationError",
        template="invalid {field}: {reason}",
        causes=("The job spec or setting has a value the product cannot accept.",),
        fixes=("Correct the named field and submit again.",),
        # Final where the field is the job's own spec (raised with final=True); a setting or a
        # credentials Secret can be mended while the job waits.
    ),
    E(
        code="NameInUse",
        kind="ValidationError",
        template="{kind} name {name!r} is already in use",
        causes=("A job of the same kind and name exists (running, finished or failed).",),
        fixes=(
            "Choose another name, or delete the existing job first "
            "(`backupctl delete <kind> <name>`); a failed delete can be retried and frees the name.",
        ),
    ),
    E(
        code="NotFound",
        kind="ValidationError",
        template="{kind} {name!r} not found",
        causes=("The named object does not exist, or was deleted.",),
        fixes=("List what exists with `backupctl <kind> list` and use one of those names.",),
        final=True,
    ),
    # --- vault -------------------------------------------------------------------------------
    E(
        code="VaultUnavailable",
        kind="VaultError",
        template="backup vault is unavailable: {cause}",
        causes=(
            "The bucket does not exist (deleted, or a typo in the vault's bucket name).",
            "The credentials have no permission on the bucket (missing RAM policy, revoked AccessKey).",
            "The network cannot reach the endpoint: an internal endpoint used from outside the bucket's "
            "region, or a public endpoint from a cluster without internet access.",
        ),
        fixes=(
            "Check that the bucket exists in the vault's region; if it was deleted, create the vault anew "
            "under a new name.",
            "Grant oss:PutObject, GetObject, DeleteObject, ListObjects and GetBucketInfo on the bucket "
            "to the credentials the product uses "
            "(buckets named cnfs-oss-* are covered by the default policy).",
            "Use network mode `public` for a bucket in another region, for edge clusters or clusters "
            "outside the VPC; give the cluster a NAT gateway for public endpoints.",
        ),
        retryable=True,
    ),
    E(
        code="VaultImmutable",
        kind="VaultError",
        template="backup vault {name!r} cannot be modified: {reason}",
        causes=("A vault is shared by clusters and may be in use by running backups.",),
        fixes=("Delete the vault and create a new one with a new name.",),
    ),
    E(
        code="VaultNameReused",
        kind="VaultError",
        template="backup vault name {name!r} belonged to a deleted vault and cannot be reused",
        causes=("Another cluster may still refer to the deleted vault by this name.",),
        fixes=("Choose a new vault name.",),
    ),
    E(
        code="VaultArchiveBucket",
        kind="VaultError",
        template="bucket {bucket!r} has storage class {storage_class} and cannot host a backup vault",
        causes=(
            "Archive, ColdArchive and DeepColdArchive objects cannot be rewritten or read at once, "
            "but vault metadata must be.",
        ),
        fixes=("Use a bucket of storage class Standard or IA.",),
    ),
    E(
        code="BackupExistsInVault",
        kind="BackupError",
        template="backup already exists in OSS bucket: {name}",
        causes=(
            "A backup of this name is in the vault: committed, in progress on another cluster, "
            "failed, or marked deleted.",
        ),
        fixes=("Use another backup name, or delete the old backup from its source cluster.",),
    ),
    E(
        code="VaultObjectFailed",
        kind="VaultError",
        template="check/upload/download backup files in OSS bucket failed: {key}",
        causes=(
            "The bucket is encrypted with a KMS key the credentials cannot use "
            "(kms:List*, DescribeKey, GenerateDataKey, Decrypt).",
            "The credentials lack read or write permission on the bucket.",
            "The AccessKey was revoked or rotated.",
        ),
        fixes=(
            "Grant the KMS and OSS permissions listed in deploy/policies and check the credentials Secret.",
        ),
        retryable=True,
    ),
    E(
        code="VaultObjectCorrupt",
        kind="VaultError",
        template="vault object {key} is corrupted: {reason}",
        causes=("The object was modified or truncated outside the product, or storage lost data.",),
        fixes=(
            "Do not use this backup for restore; take a new backup.  Report the object name if the "
            "bucket has versioning, an older version may be intact.",
        ),
    ),
    # --- backup ------------------------------------------------------------------------------
    E(
        code="NoTargetNamespace",
        kind="BackupError",
        template="get target namespace failed: {reason}",
        causes=(
            "Every namespace the backup (or its plan) includes has been deleted, "
            "or the exclude list leaves nothing.",
        ),
        fixes=(
            "Nothing to back up: the run ends Failed and the plan's later runs go on. If the application "
            "moved, replace the plan (`backupctl plan delete <plan>`, then `backupctl plan create` with "
            "the new --include-namespaces); if it is gone, delete the plan.",
        ),
        final=True,
    ),
    E(
        code="BackupProcessTimeout",
        kind="BackupError",
        template="backup process timeout: exporting resources took longer than {minutes} minutes",
        causes=("The selection holds very many objects, or the API server is slow.",),
        fixes=("Raise the setting export_timeout_minutes, or split the backup by namespace.",),
    ),
    E(
        code="SnapshotNotReady",
        kind="BackupError",
        template=("VolumeSnapshot {snapshot} of PVC {pvc} was not ready within {timeout}: {reason}"),
        causes=(
            "The snapshot service of the cloud is not enabled.",
            "The CSI snapshotter / provisioner is not running.",
            "The CSI driver lacks permission to create snapshots.",
        ),
        fixes=(
            "Enable the snapshot service, check the csi-provisioner pods and the snapshot controller, "
            "grant snapshot permissions, then `backupctl backup retry`.",
        ),
        retryable=True,
    ),
    E(
        code="SnapshotFailed",
        kind="BackupError",
        template="VolumeSnapshot {snapshot} of PVC {pvc} failed: {reason}",
        causes=("The CSI driver reported an error creating the snapshot.",),
        fixes=("Read the error, fix the driver or volume, and retry; or skip the volume.",),
    ),
    E(
        code="HostPathVolume",
        kind="BackupError",
        template="volume {volume} of pod {pod} is a HostPath volume and cannot be backed up",
        causes=("HostPath volumes live outside the kubelet root, on one node's disk.",),
        fixes=("Move the data to a PersistentVolume, or exclude the pod.",),
    ),
    E(
        code="BlockVolume",
        kind="BackupError",
        template="PVC {pvc} is a Block-mode volume and cannot be backed up at file level",
        causes=("Block volumes have no file system the node agent can read.",),
        fixes=("Use a snapshot-capable CSI storage class for this volume.",),
    ),
    E(
        code="NodeAgentMissing",
        kind="BackupError",
        template="ClientNotExist: no node worker picked up volume {volume} on node {node} within {timeout}",
        causes=(
            "The node worker DaemonSet pod is missing or crash-looping on the node.",
            "The node is excluded by the scheduling policy labels, or is a virtual node.",
        ),
        fixes=(
            "Check `kubectl -n <product namespace> get pods -o wide` for the node worker on that node; "
            "check the node's agent-excluded / agent-included labels.",
        ),
        retryable=True,
    ),
    E(
        code="NoEligibleNode",
        kind="BackupError",
        template="no eligible node for volume {volume}: {reason}",
        causes=("Every node where the volume is mounted is excluded, virtual, or has no node worker.",),
        fixes=("Change node_schedule_policy or the node labels, or mount the volume on an eligible node.",),
    ),
    E(
        code="VolumePartiallyBackedUp",
        kind="BackupError",
        template="volume {volume}: {count} files changed, vanished or were unreadable during backup",
        causes=("Applications wrote to the volume while it was copied at file level.",),
        fixes=("Quiesce the application during backup, or use a snapshot-capable storage class.",),
    ),
    # --- restore -----------------------------------------------------------------------------
    E(
        code="RestoreProcessTimeout",
        kind="RestoreError",
        template="restoring {resources} took longer than {minutes} minutes",
        causes=("The phase holds very many objects, or the API server is slow.",),
        fixes=("Raise the setting export_timeout_minutes, then retry.",),
    ),
    E(
        code="NoServedVersion",
        kind="RestoreError",
        template="{kind} {name}: none of the captured versions ({versions}) is served by this cluster",
        causes=("The restore cluster is newer and removed the API versions the backup captured.",),
        fixes=(
            "Convert the manifest to a served version and apply it by hand, or restore to an older cluster.",
        ),
    ),
    E(
        code="DiskMultiNodeAccess",
        kind="RestoreError",
        template=(
            "multi-node writing is only supported for block volume. For Kubernetes users, if unsure, "
            "use ReadWriteOnce access mode in PersistentVolumeClaim for disk volume "
            "(accessMode of PVC {pvc} is {mode})"
        ),
        causes=("A disk volume with ReadWriteMany or ReadOnlyMany cannot be attached to several nodes.",),
        fixes=("Set convertToAccessModes: [ReadWriteOnce] on the restore or conversion.",),
    ),
    E(
        code="CrossRegionNonDisk",
        kind="RestoreError",
        template="only disk type PVs support cross-region restore in current version: {pvc}",
        causes=("Only disk snapshots can be copied between regions.",),
        fixes=("Convert the volume to a disk storage class first, or restore in the backup's region.",),
    ),
    E(
        code="CrossRegionFailed",
        kind="RestoreError",
        template="ECS snapshot cross region request failed: {snapshot}: {reason}",
        causes=("The credentials lack ecs:CopySnapshot or the target region is not open.",),
        fixes=(
            "Grant the ECS snapshot permissions of deploy/policies (ecs-snapshot.json: CopySnapshot, "
            "DescribeSnapshots, DeleteSnapshot) to the product's credentials, then retry the restore.",
        ),
    ),
    E(
        code="ResourceTimeout",
        kind="RestoreError",
        template="create cluster resources timeout: {what}",
        causes=(
            "A temporary PVC did not bind: the storage class cannot provision in this zone, quota "
            "exhausted, or the provisioner is down.",
            "A temporary pod could not be scheduled to a node.",
        ),
        fixes=("`kubectl describe` the named object for events, fix the provisioner or quota, then retry.",),
        retryable=True,
    ),
    # --- conversion --------------------------------------------------------------------------
    E(
        code="StorageClassMissing",
        kind="ConvertError",
        template="storageclass {name} not exists",
        causes=("The target storage class of the conversion is not in this cluster.",),
        fixes=("Create the storage class, or pick one from `kubectl get storageclass`.",),
    ),
    E(
        code="StorageClassUnsupported",
        kind="ConvertError",
        template=(
            "only support convert to storageclass with CSI diskplugin or nasplugin provisioner: "
            "{name} uses {provisioner}"
        ),
        causes=("Conversion targets must be disk or NAS CSI classes.",),
        fixes=(
            "Choose a class whose provisioner is diskplugin.csi.alibabacloud.com or "
            "nasplugin.csi.alibabacloud.com.",
        ),
    ),
    E(
        code="MultiZoneImmediate",
        kind="ConvertError",
        template="current cluster is multi-zoned: storageclass {name} uses volumeBindingMode Immediate",
        causes=("An Immediate disk class may provision the disk in a zone where no node can attach it.",),
        fixes=("Use a disk class with volumeBindingMode: WaitForFirstConsumer.",),
    ),
    # --- cloud (ECS) -------------------------------------------------------------------------
    E(
        code="EcsPermission",
        kind="SnapshotError",
        template="the ECS-snapshot related ram policy is missing: {action}",
        causes=("The product's RAM role lacks an ECS snapshot permission.",),
        fixes=("Attach the policy of deploy/policies/ecs-snapshot.json to the product's RAM user or role.",),
    ),
    E(
        code="EcsSnapshotNotFound",
        kind="SnapshotError",
        template="ECS snapshot {snapshot} not found in region {region}",
        causes=("The snapshot expired (retention) or was deleted outside the product.",),
        fixes=("The data of this volume cannot be restored from this backup; use another backup.",),
    ),
    E(
        code="EcsQuotaExceeded",
        kind="SnapshotError",
        template="ECS snapshot quota exceeded in region {region}",
        causes=("The account reached its snapshot quota.",),
        fixes=("Delete old backups or raise the quota.",),
    ),
    E(
        code="EcsRegionNotOpen",
        kind="SnapshotError",
        template="ECS region {region} is not available to this account",
        causes=("The region is not open for the account, or its id is misspelt.",),
        fixes=("Use a region id from the ECS console.",),
    ),
    # --- operator ----------------------------------------------------------------------------
    E(
        code="OperatorTimeout",
        kind="JobError",
        template="no operator action within {timeout} after step {step} failed",
        causes=("The job waited for retry, skip or cancel and the deadline passed.",),
        fixes=("Raise operator_wait_timeout, or watch for WaitingForOperator jobs in the Web UI.",),
    ),
    E(
        code="StepFailed",
        kind="JobError",
        template="step {step} failed: {reason}",
        causes=("An unexpected error; see the detail.",),
        fixes=("Read the detail, fix the cause, and `retry` the job.",),
    ),
)

# --- cloud (ECS) client layer: credentials, throttling, transient failures (issue 8) ----------
register(
    E(
        code="CloudCredentialsMissing",
        kind="ConfigError",
        template="no usable Alibaba Cloud credentials: {reason}",
        causes=(
            "Neither ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET are set nor a credentials "
            "Secret is configured, or the Secret lacks a key.",
        ),
        fixes=(
            "Create the credentials Secret with keys AccessKeyId and AccessKeySecret (and SecurityToken for "
            "STS credentials), or set the environment variables of the workers.",
        ),
    ),
    E(
        code="EcsCredentialsInvalid",
        kind="SnapshotError",
        template="ECS rejected the credentials of AccessKey {access_key}: {reason}",
        causes=(
            "The AccessKey id does not exist or was disabled, or the secret does not belong to it.",
            "The STS security token expired or belongs to another AccessKey.",
            "The node's clock is far off, so signed requests look expired.",
        ),
        fixes=(
            "Check the credentials Secret (or environment) for a typo or a rotated key; refresh STS tokens "
            "before they expire; synchronise the node clock (NTP).",
        ),
    ),
    E(
        code="EcsThrottled",
        kind="SnapshotError",
        template="ECS API {action} was throttled: gave up after {attempts} attempt(s)",
        causes=("Too many ECS API calls by this account (other tools included) in a short time.",),
        fixes=(
            "Retry later; lower batch_snapshot_max_num or the worker counts; "
            "ask for a higher API rate limit.",
        ),
        retryable=True,
    ),
    E(
        code="EcsUnavailable",
        kind="SnapshotError",
        template="ECS API {action} failed temporarily after {attempts} attempt(s): {reason}",
        causes=("The ECS endpoint was unreachable (network, DNS, proxy) or answered with a server error.",),
        fixes=("Check the workers' network path to the ECS endpoint and retry.",),
        retryable=True,
    ),
    E(
        code="EcsSnapshotNotReady",
        kind="SnapshotError",
        template="ECS snapshot {snapshot} is not ready for {action}",
        causes=("The snapshot is still being created or copied.",),
        fixes=("Wait until the snapshot is accomplished, then retry.",),
        retryable=True,
    ),
    E(
        code="EcsSnapshotServiceDisabled",
        kind="SnapshotError",
        template="the ECS snapshot service is not activated for this account (region {region})",
        causes=("Snapshots are a separately activated ECS service.",),
        fixes=("Activate the snapshot service in the ECS console, then retry.",),
    ),
    E(
        code="EcsRequestFailed",
        kind="SnapshotError",
        template="ECS {action} failed: {ecs_code}",
        causes=("ECS refused the request for a reason the product does not classify; see the detail.",),
        fixes=("Read the detail (ECS message and request id); fix the cause and retry the job.",),
    ),
)

# --- vault records and lifecycle (issue 4) -----------------------------------------------------
register(
    E(
        code="BackupClaimLost",
        kind="BackupError",
        template="backup {name} no longer owns its name in the vault: {reason}",
        causes=(
            "The backup's claim (backups/<name>/lock.json) was deleted or taken over while it ran, "
            "e.g. the backup was deleted from another cluster.",
        ),
        fixes=("Run the backup again under a new name.",),
    ),
    E(
        code="BackupNotInVault",
        kind="BackupError",
        template="backup {name} is not offered by vault {vault}: {reason}",
        causes=(
            "The backup is still in progress or failed on its source cluster, or it was marked deleted.",
        ),
        fixes=("List the vault's backups with `backupctl vault describe <vault>` and pick a committed one.",),
    ),
    E(
        code="BackupVerifyFailed",
        kind="BackupError",
        template="backup {name} is not fully restorable: {count} problem(s) found, first {first}",
        causes=(
            "Objects of the backup were deleted, truncated or altered in the vault, or its disk snapshots "
            "were removed outside the product (each cause below names one and what it breaks).",
        ),
        fixes=(
            "Take a new backup of the affected namespaces now; the report is kept with the backup "
            "(backups/<name>/verify/ in the vault) and shown by `backupctl restore backups`.",
            "Restore what is still intact (the report lists it) with --include-namespaces or "
            "--include-resources.",
        ),
    ),
    E(
        code="RestoreDrillFailed",
        kind="RestoreError",
        template="restore drill of backup {name} failed: {count} difference(s), first {first}",
        causes=(
            "The backup could not be restored as it was taken: a volume's data or snapshot is lost or "
            "corrupt, or objects failed to restore or are missing afterwards (each cause below names one).",
        ),
        fixes=(
            "Verify the backup (`backupctl backup verify <name> --read-data`) to see what in the vault is "
            "damaged, and take a new backup of the affected namespaces now.",
            "The drill's restore job is kept: `backupctl restore describe <drill>-restore` gives each "
            "object's outcome; the report is in the vault (backups/<name>/drills/).",
        ),
    ),
    E(
        code="DrillScratchInUse",
        kind="ValidationError",
        template="restore drill {name}: scratch namespace {namespace} already exists",
        causes=("A drill never restores into an existing namespace; this one is someone else's.",),
        fixes=("Delete the namespace if it is a leftover of an interrupted drill; otherwise run "
               "`backupctl backup drill` again (each run picks a new name) or give the RestoreDrill "
               "object another name.",),
    ),
)

# --- restore item rewriting (issue 7) ----------------------------------------------------------
register(
    E(
        code="ImageRuleInvalid",
        kind="ValidationError",
        template="image rewrite rule {key} ({rule!r}) is invalid: {reason}",
        causes=("A data entry of the cluster's image-rewrite ConfigMap is not one of the four rule forms.",),
        fixes=(
            "Use 'app1:v1,app2:v2' (repository and tag), 'app1,app2' (repository), 'v1:v2' (tag) or "
            "'docker.io/library/app1:v1,registry.example.com/team/app2:v2' (registry-qualified); "
            "move whole registries with the restore's image_registry_mapping instead.",
        ),
    ),
)

# --- restore apply, volumes and delete requests (issue 7) -------------------------------------
register(
    E(
        code="RestoreItemFailed",
        kind="RestoreError",
        template="{item}: {reason}",
        causes=(
            "The target cluster refused the object: invalid there, rejected by a quota or an admission "
            "policy, or a name or node port already taken.",
        ),
        fixes=(
            "Read the reason and fix the target cluster (quota, policy, free the port) or the restore's "
            "options; then restore the failed items with a new restore narrowed by --include-resources "
            "and --include-namespaces.",
        ),
    ),
    E(
        code="NodePortTaken",
        kind="RestoreError",
        template="Service {service}: node port {port} is already allocated in the target cluster",
        causes=(
            "Another Service of the target cluster holds the port; in a restore into the cluster the "
            "backup was taken from (a mapped namespace), that is the original service.",
            "The restore keeps a node port that was set explicitly (kubectl apply, server-side apply, "
            "Helm), and every node port when it runs with --preserve-node-ports.",
        ),
        fixes=(
            "Free the port in the target cluster (delete the Service holding it, or give that one another "
            "nodePort), then restore the failed item again with a new restore narrowed by "
            "--include-namespaces and --include-resources services.",
            "Restore without --preserve-node-ports: auto-assigned node ports are then allocated anew.",
            "A port set explicitly is always kept: restore into another cluster (or a namespace whose "
            "application is gone), or create the service after the restore with another nodePort, or "
            "none to get one assigned.",
        ),
    ),
    E(
        code="RestoreSnapshotNotReady",
        kind="RestoreError",
        template=(
            "VolumeSnapshot {snapshot} for PVC {pvc} (snapshot handle {handle}) was not ready within "
            "{timeout}: {reason}"
        ),
        causes=(
            "The backup's snapshot was deleted or expired at the cloud provider.",
            "The snapshot is in another region: only copied disk snapshots restore across regions.",
            "The CSI snapshot controller or the disk driver is not running in this cluster.",
        ),
        fixes=(
            "`kubectl describe volumesnapshotcontent` of the named snapshot for the driver's error; "
            "restore from another backup or in the backup's region, then `backupctl restore retry`.",
        ),
        retryable=True,
    ),
    E(
        code="RestoreSnapshotGone",
        kind="RestoreError",
        template=(
            "the snapshot of backup {backup} for PVC {pvc} no longer exists (handle {handle}): {reason}"
        ),
        causes=(
            "The snapshot was deleted outside the product: with the application namespace or its "
            "VolumeSnapshot, by a backup made before snapshots were owned by the backup, or at the cloud "
            "provider (console, expired retention).",
            "The handle belongs to another region or account than this cluster's driver sees.",
        ),
        fixes=(
            "Restore this volume without its data (`--no-volume-data`) or from another backup; the rest of "
            "the restore is not affected.",
            "For a backup of another region, restore with ECS snapshots on so the snapshot is copied here.",
        ),
    ),
    E(
        code="SnapshotReleaseTimeout",
        kind="DeleteError",
        template=(
            "snapshot {handle} (driver {driver}) was not released: VolumeSnapshotContent {content} "
            "was not seen by the driver within {timeout}"
        ),
        causes=(
            "The CSI snapshotter sidecar of the driver is not running, or lacks permission on "
            "VolumeSnapshotContents.",
        ),
        fixes=(
            "Check the driver's csi-snapshotter container (`kubectl describe volumesnapshotcontent "
            "<content>` shows its events), then request the delete again (`backupctl delete backup <name>`): "
            "it finishes the job.",
        ),
        retryable=True,
    ),
    E(
        code="VolumeNeedsConversion",
        kind="RestoreError",
        template=(
            "PVC {pvc}: its snapshot (driver {driver}) cannot be restored into storage class "
            "{storage_class} (provisioner {provisioner})"
        ),
        causes=("The storage-class mapping moves the volume to another driver; a snapshot restores "
                "only through the driver that took it.",),
        fixes=("Convert the backup's volumes to the target class first (`backupctl convert`), or map the "
               "class to one of the snapshot's driver.",),
    ),
    E(
        code="JobStillRunning",
        kind="ValidationError",
        template="{kind} {name} is still running",
        causes=("Deleting a running job would leave its work half done.",),
        fixes=(
            "Cancel it first (`backupctl <kind> cancel <name>`, or `spec.cancel: true` on its object), wait "
            "until it ends, then retry the delete (`backupctl delete retry <request>`, or annotate the "
            "DeleteRequest backupcenter.io/steer=retry).",
        ),
    ),
)

# --- node workers and file-level volumes ----------------------------------------------------
register(
    E(
        code="VolumeMountMissing",
        kind="BackupError",
        template="volume {volume} is not mounted at {path} on node {node}",
        causes=(
            "The pod using the volume moved to another node or was deleted after the backup planned it.",
            "The node worker's kubelet root is wrong (clusters move or symlink /var/lib/kubelet).",
        ),
        fixes=(
            "Retry the step: the volume is planned again where it is mounted now.",
            "Set KUBELET_ROOT_PATH (or the kubelet_root_path setting) to the node's real kubelet root.",
        ),
        retryable=True,
    ),
    E(
        code="VolumeCopyFailed",
        kind="BackupError",
        template="copying the files of volume {volume} failed: {reason}",
        causes=("The vault refused an object, or the volume could not be read.",),
        fixes=("Check the vault's availability and the node worker's log, then retry the step.",),
        retryable=True,
    ),
)

# --- storage-class conversion: volumes it cannot convert ------------------------------------
register(
    E(
        code="ConversionUnsupported",
        kind="ConvertError",
        template="PVC {pvc}: {source} cannot be converted to storage class {target}",
        causes=(
            "Conversion turns file-level volume data into snapshots of a disk class; a CSI snapshot "
            "restores only through the driver that took it.",
        ),
        fixes=(
            "Map the volume's class to a class of the snapshot's driver, or restore it without a "
            "storage-class mapping.",
        ),
    ),
    E(
        code="NoSnapshotClass",
        kind="ConvertError",
        template=(
            "PVC {pvc}: no VolumeSnapshotClass for driver {driver}, so storage class {storage_class} "
            "cannot hold converted snapshots"
        ),
        causes=("The cluster has no VolumeSnapshotClass for the target class's CSI driver.",),
        fixes=("Create a VolumeSnapshotClass for the driver (deploy/ has the disk one), then run again.",),
    ),
)

# --- ECS snapshots in backup, delete and cross-region restore (issue 8) ---------------------
register(
    E(
        code="EcsRegionUnknown",
        kind="ConfigError",
        template="the cluster's region is unknown: {reason}",
        causes=("ECS snapshots are regional; no node carries the label topology.kubernetes.io/region.",),
        fixes=("Set the setting region (e.g. cn-hangzhou), or label the nodes with their region.",),
    ),
    E(
        code="EcsCopyTimeout",
        kind="RestoreError",
        template="copying ECS snapshot {snapshot} to region {region} took longer than {timeout} ({progress})",
        causes=("Cross-region copies of large snapshots take hours, more when many copies run at once.",),
        fixes=(
            "Retry: the copy continues where it is (the same copy is polled again); raise the setting "
            "ecs_copy_timeout, or lower ecs_copy_parallelism.",
        ),
        retryable=True,
    ),
)
