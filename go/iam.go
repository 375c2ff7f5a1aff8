package writelane

import "encoding/json"

// The change functions of the common IAM shapes, for Lane.Update: thin wrappers over the
// core's (the same rules in every binding). Documents are JSON text in and out ("null"
// for an entity without one yet; object keys come out sorted). Each is idempotent:
// applied again to its own result it changes nothing, so re-applying after a conflict, on
// a fresher document, is safe. A text that is not JSON or a document without the shape
// the change needs is a *DocumentError whose Path names the argument (document,
// statement, set) or the field (Statement[2], statement.Sid).

// PutStatement appends statement (a JSON object with a non-empty string Sid) to the
// policy document doc, or replaces the statement with the same Sid. A missing Version
// becomes 2012-10-17; a single statement object becomes a list.
func PutStatement(doc, statement string) (string, error) {
	return libIAMPutStatement(doc, statement)
}

// RemoveStatement removes the statement whose Sid is sid from the policy document doc,
// if there is one.
func RemoveStatement(doc, sid string) (string, error) {
	return libIAMRemoveStatement(doc, sid)
}

// AddTrustPrincipal adds principal (an ARN, account id or service name) of kind (AWS,
// Service or Federated) to a role's trust policy doc, in the statement whose Sid is sid,
// created (Allow, sts:AssumeRole) when missing. A principal already there is not added
// twice.
func AddTrustPrincipal(doc, sid, kind, principal string) (string, error) {
	return libIAMAddTrustPrincipal(doc, sid, kind, principal)
}

// Tag is one IAM tag.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// SetTags sets tags in an IAM tag list (JSON text [{"Key":..., "Value":...}], or
// "null"): each of set, in order, replaces the value of its key in place or is appended.
func SetTags(tags string, set ...Tag) (string, error) {
	if set == nil {
		set = []Tag{}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return "", err
	}
	return libIAMSetTags(tags, string(b))
}
