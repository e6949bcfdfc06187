package policies

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseConfig(t *testing.T) {
	const header = "apiVersion: backupguard.io/v1alpha1\nkind: Config\n"
	cases := map[string]struct {
		data    string
		want    *Config
		wantErr string
	}{
		"an empty file says what it needs": {
			data:    "",
			wantErr: "config c.yaml: the file is empty; it needs at least apiVersion: backupguard.io/v1alpha1 and kind: Config",
		},
		"a file of blank lines is empty": {
			data:    "\n  \n\t\n",
			wantErr: "config c.yaml: the file is empty; it needs at least apiVersion: backupguard.io/v1alpha1 and kind: Config",
		},
		"a minimal file gives exactly the defaults": {
			data: header,
			want: DefaultConfig(),
		},
		"a minimal JSON file gives exactly the defaults": {
			data: `{"apiVersion": "backupguard.io/v1alpha1", "kind": "Config"}`,
			want: DefaultConfig(),
		},
		"every field is read": {
			data: header + "longhorn:\n  namespace: storage\n  settings:\n    recurringJobMaxRetention: 20\n    allowRecurringJobWhileVolumeDetached: true\n",
			want: &Config{APIVersion: ConfigAPIVersion, Kind: ConfigKind, Longhorn: LonghornConfig{
				Namespace: "storage",
				Settings:  OfflineSettings{RecurringJobMaxRetention: new(20), AllowRecurringJobWhileVolumeDetached: new(true)},
			}},
		},
		"settings left out get Longhorn's defaults": {
			data: header + "longhorn:\n  settings:\n    recurringJobMaxRetention: 250\n",
			want: &Config{APIVersion: ConfigAPIVersion, Kind: ConfigKind, Longhorn: LonghornConfig{
				Namespace: DefaultLonghornNamespace,
				Settings:  OfflineSettings{RecurringJobMaxRetention: new(250), AllowRecurringJobWhileVolumeDetached: new(false)},
			}},
		},
		"an unknown field is named by its full path": {
			data:    header + "longhorn: {namespce: x}\n",
			wantErr: `config c.yaml: unknown field "longhorn.namespce"`,
		},
		"several unknown fields are all named": {
			data:    header + "longhorn:\n  settings:\n    maxRetention: 5\nextra: 1\n",
			wantErr: `config c.yaml: unknown field "extra"; unknown field "longhorn.settings.maxRetention"`,
		},
		"a duplicated field is refused": {
			data:    header + "longhorn:\n  namespace: a\n  namespace: b\n",
			wantErr: "config c.yaml: not valid YAML: yaml: unmarshal errors:\n  line 5: key \"namespace\" already set in map",
		},
		"a wrong apiVersion lists the supported one": {
			data:    "apiVersion: backupguard.io/v1\nkind: Config\n",
			wantErr: `config c.yaml: apiVersion: Unsupported value: "backupguard.io/v1": supported values: "backupguard.io/v1alpha1"`,
		},
		"a wrong kind lists the supported one": {
			data:    "apiVersion: backupguard.io/v1alpha1\nkind: Configuration\n",
			wantErr: `config c.yaml: kind: Unsupported value: "Configuration": supported values: "Config"`,
		},
		"a missing apiVersion and kind are both reported": {
			data:    "longhorn: {namespace: storage}\n",
			wantErr: `config c.yaml: [apiVersion: Unsupported value: "": supported values: "backupguard.io/v1alpha1", kind: Unsupported value: "": supported values: "Config"]`,
		},
		"a maximum retention of 0 is below Longhorn's range": {
			data:    header + "longhorn: {settings: {recurringJobMaxRetention: 0}}\n",
			wantErr: "config c.yaml: longhorn.settings.recurringJobMaxRetention: Invalid value: 0: must be between 1 and 250, like Longhorn's setting",
		},
		"a maximum retention of 251 is above Longhorn's range": {
			data:    header + "longhorn: {settings: {recurringJobMaxRetention: 251}}\n",
			wantErr: "config c.yaml: longhorn.settings.recurringJobMaxRetention: Invalid value: 251: must be between 1 and 250, like Longhorn's setting",
		},
		"a quoted maximum retention has the wrong type": {
			data:    header + "longhorn: {settings: {recurringJobMaxRetention: \"20\"}}\n",
			wantErr: "config c.yaml: json: cannot unmarshal string into Go struct field OfflineSettings.longhorn.settings.recurringJobMaxRetention of type int",
		},
		"bad YAML names the line": {
			data:    header + "longhorn: [\n",
			wantErr: "config c.yaml: not valid YAML: yaml: line 3: did not find expected node content",
		},
		"a list is not a config": {
			data:    "- apiVersion: backupguard.io/v1alpha1\n",
			wantErr: "config c.yaml: json: cannot unmarshal array into Go value of type policies.Config",
		},
		"a namespace that is not a DNS label is invalid": {
			data: header + "longhorn:\n  namespace: Longhorn_System\n",
			wantErr: `config c.yaml: longhorn.namespace: Invalid value: "Longhorn_System": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', ` +
				`and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.data), "c.yaml")
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreUnexported(Config{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	want := &Config{APIVersion: "backupguard.io/v1alpha1", Kind: "Config", Longhorn: LonghornConfig{
		Namespace: "longhorn-system",
		Settings:  OfflineSettings{RecurringJobMaxRetention: new(100), AllowRecurringJobWhileVolumeDetached: new(false)},
	}}
	if diff := cmp.Diff(want, DefaultConfig(), cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("DefaultConfig (-want +got):\n%s", diff)
	}
}
