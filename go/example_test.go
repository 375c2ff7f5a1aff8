package writelane_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	writelane "github.com/writelane/writelane/go"
)

// A write that meets one ConcurrentModification and commits on its second attempt.
func ExampleLane_Run() {
	lane, err := writelane.New(`{"preset": "iam", "retry": {"conflict": {"base_ms": 5}}}`)
	if err != nil {
		panic(err)
	}
	defer lane.Close()
	failures := 1
	err = lane.Run(context.Background(), "role/deploy", func(ctx context.Context, a writelane.Attempt) error {
		if failures > 0 {
			failures--
			return &writelane.Failure{Code: "ConcurrentModification", HTTPStatus: 409}
		}
		fmt.Println("wrote on attempt", a.Number)
		return nil
	})
	fmt.Println("gave up:", errors.Is(err, writelane.ErrGaveUp))
	// Output:
	// wrote on attempt 2
	// gave up: false
}

// The canonical change token of an IAM policy document.
func ExamplePolicyToken() {
	a, _ := writelane.PolicyToken(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)
	b, _ := writelane.PolicyToken(`{"Statement":{"Resource":"*","Effect":"Allow","Action":["S3:GetObject"]},"Version":"2012-10-17"}`)
	fmt.Println(a == b, a[:10])
	// Output: true c1:sha256:
}

// Three goroutines append statements to one policy document with Lane.Update: changes
// queued behind the lane holder ride in its write (group commit).
func ExampleLane_Update() {
	lane, err := writelane.New(`"iam"`)
	if err != nil {
		panic(err)
	}
	defer lane.Close()
	var mu sync.Mutex
	policy, version, writes := "null", 0, 0
	read := func(ctx context.Context) (string, *string, error) {
		mu.Lock()
		defer mu.Unlock()
		token := fmt.Sprint(version)
		return policy, &token, nil
	}
	write := func(ctx context.Context, doc string, a writelane.Attempt) error {
		time.Sleep(20 * time.Millisecond) // IAM's write time: the others queue meanwhile
		mu.Lock()
		defer mu.Unlock()
		policy, version, writes = doc, version+1, writes+1
		a.SetToken(fmt.Sprint(version))
		return nil
	}
	var wg sync.WaitGroup
	for _, sid := range []string{"A", "B", "C"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statement := `{"Sid":"` + sid + `","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}`
			change := func(doc string) (string, error) { return writelane.PutStatement(doc, statement) }
			if err := lane.Update(context.Background(), "role/app", read, change, write); err != nil {
				fmt.Println(sid, err)
			}
		}()
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	var doc struct{ Statement []struct{ Sid string } }
	_ = json.Unmarshal([]byte(policy), &doc)
	fmt.Println(len(doc.Statement), "statements, fewer writes than updates:", writes < 3)
	// Output: 3 statements, fewer writes than updates: true
}
