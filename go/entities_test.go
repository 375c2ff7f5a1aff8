package writelane

import (
	"errors"
	"reflect"
	"testing"
)

func TestEntitiesOf(t *testing.T) {
	cases := []struct {
		service, op, params string
		c                   EntityContext
		access              Access
		keys                []string
	}{
		{"IAM", "PutRolePolicy", `{"RoleName":"app","PolicyName":"p","PolicyDocument":"{}"}`, EntityContext{}, AccessWrite, []string{"role/app"}},
		{"iam", "PutRolePolicy", `{"RoleName":"app"}`, EntityContext{Account: "123456789012"}, AccessWrite, []string{"arn:aws:iam::123456789012:role/app"}},
		{"iam", "AddUserToGroup", `{"UserName":"zed","GroupName":"admins"}`, EntityContext{}, AccessWrite, []string{"group/admins", "user/zed"}},
		{"iam", "CreateAccessKey", `{}`, EntityContext{CallerUser: "alice"}, AccessWrite, []string{"user/alice"}},
		{"iam", "GetRole", `{"RoleName":"app"}`, EntityContext{}, AccessRead, []string{}},
		{"iam", "FrobnicateRole", "", EntityContext{}, AccessUnknown, []string{}},
		{"STS", "AssumeRole", "", EntityContext{}, AccessUntracked, []string{}},
	}
	for _, c := range cases {
		got, err := EntitiesOf(c.service, c.op, c.params, c.c)
		if err != nil {
			t.Fatalf("%s %s: %v", c.service, c.op, err)
		}
		if got.Access != c.access || !reflect.DeepEqual(got.Keys, c.keys) || got.Undetermined != "" {
			t.Errorf("%s %s: got %+v, want %s %v", c.service, c.op, got, c.access, c.keys)
		}
	}
	got, err := EntitiesOf("iam", "PutRolePolicy", "", EntityContext{})
	if err != nil || got.Access != AccessWrite || len(got.Keys) != 0 || got.Parameter != "RoleName" ||
		got.Undetermined == "" || !reflect.DeepEqual(got.Params, []string{"RoleName"}) {
		t.Errorf("undetermined: %+v %v", got, err)
	}
	var de *DocumentError
	if _, err := EntitiesOf("iam", "PutRolePolicy", `{"RoleName":`, EntityContext{}); !errors.As(err, &de) || de.Path != "params" {
		t.Errorf("bad JSON: %v", err)
	}
	var se *StatusError
	if _, err := EntitiesOf("iam", "", "", EntityContext{}); !errors.As(err, &se) || se.Status != StatusInvalidArgument || se.Path != "operation" {
		t.Errorf("empty operation: %v", err)
	}
	if _, err := EntitiesOf("iam", "PutRolePolicy", "{\"RoleName\":\"\xff\"}", EntityContext{}); !errors.As(err, &se) || se.Status != StatusInvalidUTF8 {
		t.Errorf("bad UTF-8: %v", err)
	}
}
