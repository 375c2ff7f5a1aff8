package writelane

import (
	"encoding/json"
	"strings"
)

// Access says how the entity table treats an SDK call.
type Access string

const (
	// AccessWrite is a write operation of the table: it runs in the lanes of its entities.
	AccessWrite Access = "write"
	// AccessRead is an operation named like the service's reads (Get*, List*, ...): it
	// touches no lane.
	AccessRead Access = "read"
	// AccessUnknown is an operation of a tracked service that is neither in the table nor
	// named like a read (newer than the table): it goes through unserialised, counted.
	AccessUnknown Access = "unknown"
	// AccessUntracked is an operation of a service that has no table.
	AccessUntracked Access = "untracked"
)

// EntityContext is what the caller knows about where a request runs; every field is
// optional.
type EntityContext struct {
	// Account is the AWS account the request acts in: with it, keys are ARNs
	// (arn:aws:iam::123456789012:role/app); without it, type/name (role/app). Writers
	// that share a lease store must agree on it, or they key one entity two ways.
	Account string `json:"account,omitempty"`
	// Partition is the account's partition (aws when empty).
	Partition string `json:"partition,omitempty"`
	// CallerUser is the calling IAM user's name, for operations that act on it when
	// UserName is absent (CreateAccessKey, ChangePassword).
	CallerUser string `json:"caller_user,omitempty"`
}

// CallEntities is what the entity table says about one call.
type CallEntities struct {
	// Access is how the table treats the operation.
	Access Access `json:"access"`
	// Keys are the canonical keys of the entities a write touches, sorted: the order in
	// which their lanes are taken. Empty for anything but a write, and for a write that
	// creates an entity only its response names, or whose entities are undetermined.
	Keys []string `json:"keys"`
	// Params are, for a write, the request parameters (API spelling) its entities are
	// read from.
	Params []string `json:"params"`
	// Undetermined is, for a write whose entities cannot be determined from the request
	// (a required parameter missing, an ARN of the wrong type, the calling user unknown),
	// the reason; Parameter names the parameter at fault.
	Undetermined string `json:"undetermined,omitempty"`
	Parameter    string `json:"parameter,omitempty"`
}

// EntitiesOf asks the core's entity table (the one every binding and `writelane trail`
// use) which entities a call of service's operation writes. service is the table's ARN
// namespace (iam), its CloudTrail event source (iam.amazonaws.com) or an SDK's service
// id (IAM), in any case; params is the request's parameters as a JSON object, in the
// API's spelling (RoleName) or CloudTrail's (roleName), "" for none. A params or context
// the library refuses is a *DocumentError naming it; an empty operation a *StatusError.
func EntitiesOf(service, operation, params string, c EntityContext) (*CallEntities, error) {
	if params == "" {
		params = "null"
	}
	ctx := "null"
	if c != (EntityContext{}) {
		b, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		ctx = string(b)
	}
	text, err := libIAMEntities(service, operation, params, ctx)
	if err != nil {
		return nil, err
	}
	out := &CallEntities{}
	dec := json.NewDecoder(strings.NewReader(text))
	if err := dec.Decode(out); err != nil {
		return nil, err
	}
	return out, nil
}
