package main

import (
	"fmt"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Every how many Volumes one has backups too old (stale) and one whose newest backup failed (failing),
// so the report has every verdict a backup decides.
const (
	staleEvery   = 10
	failingEvery = 25
)

// scaleBackups are the n-th Volume's BackupVolume and its backups Backups, one a day at 02:00 UTC up to
// now, written as Longhorn v1.12 leaves them after a recurring backup (the fields test/crds has, each
// set as longhorn-manager sets it), so the API server stores and the cache decodes objects of the real
// size. Every staleEvery-th Volume's backups stopped four days ago; every failingEvery-th Volume's
// newest backup is in Error.
func scaleBackups(n int, volume string, backups int, now time.Time) []*unstructured.Unstructured {
	newest := time.Date(now.Year(), now.Month(), now.Day(), 2, 0, 0, 0, time.UTC)
	if newest.After(now) {
		newest = newest.AddDate(0, 0, -1)
	}
	if n%staleEvery == staleEvery-3 {
		newest = newest.AddDate(0, 0, -4)
	}
	labels := func() map[string]any { return map[string]any{"backup-volume": volume, "backup-target": "default"} }
	var objects []*unstructured.Unstructured
	var lastCompleted, lastName string
	for k := backups - 1; k >= 0; k-- {
		name := fmt.Sprintf("backup-%08x%08x", n, k)
		started := newest.AddDate(0, 0, -k)
		snapshot := fmt.Sprintf("bench-daily-c-%06x%02x", n, k)
		status := map[string]any{
			"ownerID": scaleNode(n % 7), "state": "Completed", "progress": int64(100),
			"url":          fmt.Sprintf("s3://backups@us-east-1/?backup=%s&volume=%s", name, volume),
			"snapshotName": snapshot, "snapshotCreatedAt": rfc3339(started), "backupCreatedAt": rfc3339(started.Add(4 * time.Minute)),
			"size": "2147483648", "newlyUploadDataSize": strconv.Itoa(52428800 + n%1000*4096), "reUploadedDataSize": "0",
			"labels":           map[string]any{"RecurringJob": "bench-daily", "longhorn.io/volume-access-mode": "rwo"},
			"backupTargetName": "default", "replicaAddress": fmt.Sprintf("tcp://10.42.%d.%d:10010", n/250%250, n%250),
			"compressionMethod": "lz4", "volumeName": volume, "volumeSize": "10737418240",
			"volumeCreated": rfc3339(newest.AddDate(0, 0, -backups-30)), "lastSyncedAt": rfc3339(started.Add(5 * time.Minute)),
		}
		if k == 0 && n%failingEvery == failingEvery-14 {
			status["state"], status["progress"] = "Error", int64(37)
			status["error"] = "failed to upload block: dial tcp 10.96.0.20:9000: i/o timeout"
			delete(status, "backupCreatedAt")
			delete(status, "url")
		} else {
			lastCompleted, lastName = status["backupCreatedAt"].(string), name
		}
		objects = append(objects, longhornObject("Backup", name, labels(),
			map[string]any{"snapshotName": snapshot, "labels": map[string]any{"RecurringJob": "bench-daily"}, "backupMode": "incremental", "backupBlockSize": "2097152"},
			status))
	}
	backupVolume := longhornObject("BackupVolume", fmt.Sprintf("%s-%08x", volume, n), labels(),
		map[string]any{"volumeName": volume, "backupTargetName": "default"},
		map[string]any{
			"ownerID": scaleNode(n % 7), "size": "2147483648", "labels": map[string]any{"longhorn.io/volume-access-mode": "rwo"},
			"createdAt": rfc3339(newest.AddDate(0, 0, -backups-30)), "lastBackupName": lastName, "lastBackupAt": lastCompleted,
			"dataStored": "2201170739", "storageClassName": "longhorn", "lastModificationTime": lastCompleted, "lastSyncedAt": rfc3339(now),
		})
	return append([]*unstructured.Unstructured{backupVolume}, objects...)
}

func longhornObject(kind, name string, labels, spec, status map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "longhorn.io/v1beta2", "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": longhornNamespace, "labels": labels, "finalizers": []any{"longhorn.io"}},
		"spec":     spec, "status": status,
	}}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
