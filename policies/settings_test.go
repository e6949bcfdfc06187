package policies

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/backupguard/backupguard/longhorn"
)

func TestLonghornSettingsFrom(t *testing.T) {
	setting := func(value string) *longhorn.Setting { return &longhorn.Setting{Value: value} }
	cases := map[string]struct {
		maxRetention, allowWhileDetached *longhorn.Setting
		want                             LonghornSettings
		warnings                         []string
	}{
		"absent settings give Longhorn's defaults": {
			want: LonghornSettings{RecurringJobMaxRetention: 100, AllowRecurringJobWhileVolumeDetached: false},
		},
		"a numeric maximum retention is used": {
			maxRetention: setting("20"),
			want:         LonghornSettings{RecurringJobMaxRetention: 20},
		},
		"spaces around a value are ignored": {
			maxRetention:       setting(" 250 \n"),
			allowWhileDetached: setting(" true "),
			want:               LonghornSettings{RecurringJobMaxRetention: 250, AllowRecurringJobWhileVolumeDetached: true},
		},
		"a maximum retention of 0 falls back to the default with a warning": {
			maxRetention: setting("0"),
			want:         LonghornSettings{RecurringJobMaxRetention: 100},
			warnings:     []string{`the Longhorn setting recurring-job-max-retention has value "0", which is not a number from 1 to 250; using Longhorn's default 100`},
		},
		"a maximum retention of 251 falls back to the default with a warning": {
			maxRetention: setting("251"),
			want:         LonghornSettings{RecurringJobMaxRetention: 100},
			warnings:     []string{`the Longhorn setting recurring-job-max-retention has value "251", which is not a number from 1 to 250; using Longhorn's default 100`},
		},
		"a non-numeric maximum retention falls back to the default with a warning": {
			maxRetention: setting("lots"),
			want:         LonghornSettings{RecurringJobMaxRetention: 100},
			warnings:     []string{`the Longhorn setting recurring-job-max-retention has value "lots", which is not a number from 1 to 250; using Longhorn's default 100`},
		},
		"allow while detached true is read": {
			allowWhileDetached: setting("true"),
			want:               LonghornSettings{RecurringJobMaxRetention: 100, AllowRecurringJobWhileVolumeDetached: true},
		},
		"allow while detached false is read": {
			allowWhileDetached: setting("false"),
			want:               LonghornSettings{RecurringJobMaxRetention: 100},
		},
		"an unreadable allow while detached falls back to false with a warning": {
			allowWhileDetached: setting("yes"),
			want:               LonghornSettings{RecurringJobMaxRetention: 100},
			warnings:           []string{`the Longhorn setting allow-recurring-job-while-volume-detached has value "yes", which is not true or false; using Longhorn's default false`},
		},
		"the per-engine form takes the v1 engine's value": {
			maxRetention:       setting(`{"v1":"30","v2":"40"}`),
			allowWhileDetached: setting(`{"v1":"true","v2":"false"}`),
			want:               LonghornSettings{RecurringJobMaxRetention: 30, AllowRecurringJobWhileVolumeDetached: true},
		},
		"the per-engine form without a v1 value falls back with a warning that shows the whole value": {
			allowWhileDetached: setting(`{"v2":"true"}`),
			want:               LonghornSettings{RecurringJobMaxRetention: 100},
			warnings:           []string{`the Longhorn setting allow-recurring-job-while-volume-detached has value "{\"v2\":\"true\"}", which is not true or false; using Longhorn's default false`},
		},
		"two unreadable settings give two warnings": {
			maxRetention:       setting(""),
			allowWhileDetached: setting("{broken"),
			want:               LonghornSettings{RecurringJobMaxRetention: 100},
			warnings: []string{
				`the Longhorn setting recurring-job-max-retention has value "", which is not a number from 1 to 250; using Longhorn's default 100`,
				`the Longhorn setting allow-recurring-job-while-volume-detached has value "{broken", which is not true or false; using Longhorn's default false`,
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, warnings := LonghornSettingsFrom(tc.maxRetention, tc.allowWhileDetached)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.warnings, warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOfflineLonghornSettings(t *testing.T) {
	config, err := ParseConfig([]byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\nlonghorn:\n  settings:\n    recurringJobMaxRetention: 20\n    allowRecurringJobWhileVolumeDetached: true\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := LonghornSettings{RecurringJobMaxRetention: 20, AllowRecurringJobWhileVolumeDetached: true}
	if diff := cmp.Diff(want, OfflineLonghornSettings(config)); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
}
