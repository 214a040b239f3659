package fleet_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet"
)

const inventoryINI = `# the fleet
mail.example.com

[web]
web[01:03].example.com ansible_user=deploy
legacy.example.com:2222 http_port=8080 # the old one

[db]
db-[a:b].example.com
db-c.example.com ansible_host=10.0.0.7 ansible_port=5522 note="primary db"

[web:vars]
http_port=80
tier = front

[prod:children]
web
db

[prod:vars]
tier=back
env=prod

[all:vars]
ntp=ntp.example.com
`

const inventoryYAML = `all:
  hosts:
    mail.example.com:
  vars:
    ntp: ntp.example.com
  children:
    prod:
      vars:
        tier: back
        env: prod
      children:
        web:
          hosts:
            web[01:03].example.com:
              ansible_user: deploy
            legacy.example.com:
              ansible_port: 2222
              http_port: 8080
          vars:
            http_port: 80
            tier: front
        db:
          hosts:
            db-[a:b].example.com:
            db-c.example.com:
              ansible_host: 10.0.0.7
              ansible_port: 5522
              note: primary db
`

func invNames(hs []fleet.InventoryHost) []string {
	var s []string
	for _, h := range hs {
		s = append(s, h.Name)
	}
	return s
}

// TestInventory: the same Ansible inventory in INI and YAML gives the
// same hosts, groups, merged variables and addresses.
func TestInventory(t *testing.T) {
	dir := t.TempDir()
	iniFile := filepath.Join(dir, "hosts.ini")
	yamlFile := filepath.Join(dir, "hosts.yml")
	require.NoError(t, os.WriteFile(iniFile, []byte(inventoryINI), 0o600))
	require.NoError(t, os.WriteFile(yamlFile, []byte(inventoryYAML), 0o600))
	for _, file := range []string{iniFile, yamlFile} {
		t.Run(filepath.Ext(file), func(t *testing.T) {
			inv, err := fleet.ReadInventory(file)
			require.NoError(t, err)
			web := []string{"web01.example.com", "web02.example.com", "web03.example.com", "legacy.example.com"}
			db := []string{"db-a.example.com", "db-b.example.com", "db-c.example.com"}
			assert.Equal(t, append(append([]string{"mail.example.com"}, web...), db...), invNames(inv.Hosts))
			assert.Equal(t, web, inv.Groups["web"])
			assert.Equal(t, db, inv.Groups["db"])
			assert.Equal(t, append(append([]string{}, web...), db...), inv.Groups["prod"], "children's hosts are the parent's")
			assert.Equal(t, []string{"mail.example.com"}, inv.Groups["ungrouped"])
			assert.Len(t, inv.Groups["all"], 8)

			byName := map[string]fleet.InventoryHost{}
			for _, h := range inv.Hosts {
				byName[h.Name] = h
			}
			legacy := byName["legacy.example.com"]
			assert.Equal(t, "8080", legacy.Vars["http_port"], "host vars win over group vars")
			assert.Equal(t, "front", legacy.Vars["tier"], "the child group's vars win over the parent's")
			assert.Equal(t, "prod", legacy.Vars["env"], "the parent's vars reach the child's hosts")
			assert.Equal(t, "ntp.example.com", legacy.Vars["ntp"], "all's vars reach every host")
			assert.Equal(t, "legacy.example.com:2222", legacy.Address())
			assert.Equal(t, "deploy@web02.example.com", byName["web02.example.com"].Address())
			assert.Equal(t, "10.0.0.7:5522", byName["db-c.example.com"].Address())
			assert.Equal(t, "primary db", byName["db-c.example.com"].Vars["note"])
			assert.Equal(t, "back", byName["db-a.example.com"].Vars["tier"])
			assert.Equal(t, "mail.example.com", byName["mail.example.com"].Address())
			_, hasTier := byName["mail.example.com"].Vars["tier"]
			assert.False(t, hasTier, "group vars stay in their group")

			for _, tc := range []struct {
				limit string
				want  []string
			}{
				{"", invNames(inv.Hosts)},
				{"all", invNames(inv.Hosts)},
				{"web", web},
				{"db,mail.example.com", []string{"mail.example.com", "db-a.example.com", "db-b.example.com", "db-c.example.com"}},
				{"prod:!web", db},
				{"prod:&web:!legacy.example.com", web[:3]},
				{"web0*", web[:3]},
				{"d?", db},
			} {
				got, err := inv.Limit(tc.limit)
				require.NoError(t, err, "Limit(%q)", tc.limit)
				assert.Equal(t, tc.want, invNames(got), "Limit(%q)", tc.limit)
			}
			_, err = inv.Limit("web:nosuch")
			assert.ErrorIs(t, err, fleet.ErrInventory, "an unknown name is an error, not an empty run")
		})
	}
}

func TestInventoryErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"bad section", "[web\nhost1\n", "line 1"},
		{"bad section kind", "[web:stuff]\nhost1\n", "line 1"},
		{"var without value", "[web]\nhost1 port\n", "line 2"},
		{"vars line without =", "[web:vars]\nport\n", "line 2"},
		{"empty host", "[web]\nuser@\n", "line 2"},
		{"unterminated quote", "[web]\nhost1 a=\"b\n", "line 2"},
		{"bad range", "[web]\nweb[3:1]\n", "line 2"},
		{"ranges too large", "[web]\nw[0:99999]x[0:99999]\n", "more than 100000 hosts"},
		{"cycle", "[a:children]\nb\n[b:children]\na\n", "contains itself"},
		{"yaml unknown key", "all:\n  hostz:\n    a:\n", "unknown key"},
		{"yaml hosts list", "all:\n  hosts:\n    - a\n", "mapping of host names"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fleet.ParseInventory(strings.NewReader(tc.in))
			require.ErrorIs(t, err, fleet.ErrInventory)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// FuzzParseInventory: any input gives an inventory or an error matching
// ErrInventory, never a panic, and every host it gives is a valid host in
// the "all" group.
func FuzzParseInventory(f *testing.F) {
	f.Add(inventoryINI)
	f.Add(inventoryYAML)
	f.Add("[a:children]\nb\n[b:children]\na\n")
	f.Add("w[01:10:3]-[a:c]\n")
	f.Fuzz(func(t *testing.T, in string) {
		inv, err := fleet.ParseInventory(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, fleet.ErrInventory) {
				t.Fatalf("ParseInventory(%q) = %v; want an error matching ErrInventory", in, err)
			}
			return
		}
		if len(inv.Groups["all"]) != len(inv.Hosts) {
			t.Fatalf("ParseInventory(%q): all has %d hosts, Hosts %d", in, len(inv.Groups["all"]), len(inv.Hosts))
		}
		for _, h := range inv.Hosts {
			if err := fleet.CheckHost(h.Address()); err != nil {
				t.Fatalf("ParseInventory(%q) gave host %q: %v", in, h.Address(), err)
			}
		}
	})
}
