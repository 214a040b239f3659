package gitlabx

import "testing"

func TestMarker(t *testing.T) {
	tests := []struct {
		kind, value string
		want        string
		wantValue   string
	}{
		{"version-check", "version", "<!-- opskit:version-check=version -->", "version"},
		{"fingerprint", "ab12cd", "<!-- opskit:fingerprint=ab12cd -->", "ab12cd"},
		{"fingerprint", "a b>c", "<!-- opskit:fingerprint=a_b_c -->", "a_b_c"},
	}
	for _, tt := range tests {
		m := marker(tt.kind, tt.value)
		if m != tt.want {
			t.Errorf("marker(%q, %q) = %q; want %q", tt.kind, tt.value, m, tt.want)
		}
		text := "Some note.\n\n" + marker("other", "x") + "\n" + m + "\nmore"
		if v, ok := findMarker(text, tt.kind); !ok || v != tt.wantValue {
			t.Errorf("findMarker(text with %q, %q) = %q, %v; want %q, true", m, tt.kind, v, ok, tt.wantValue)
		}
		if !hasMarker(text, tt.kind, tt.value) {
			t.Errorf("hasMarker(text with %q, %q, %q) = false", m, tt.kind, tt.value)
		}
	}
	if v, ok := findMarker("no marker <!-- opskit:other=1 -->", "fingerprint"); ok {
		t.Errorf("findMarker without the kind = %q, true; want false", v)
	}
	if hasMarker("<!-- opskit:version-check=version2 -->", "version-check", "version") {
		t.Error("hasMarker matched a marker whose value only starts with the wanted one")
	}
}
