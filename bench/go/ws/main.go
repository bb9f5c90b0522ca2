// go-ws: the gorilla/websocket peer, written the way gorilla's own examples do.
//
//	/ws/sub?topic=T   subscribe: every message published on T is written to the connection
//	POST /publish?topic=T   its body goes to every subscriber of T
//	any other path    echo (one goroutine per connection, ReadMessage/WriteMessage)
//
// Fan-out follows gorilla's chat example's shape: each subscriber owns a
// buffered channel drained by its own writer goroutine (one writer per
// connection, as gorilla requires), and a publish hands the shared message to
// every channel. Built offline against Debian's golang-github-gorilla-websocket-dev.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func echo(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}

type subscriber struct{ send chan []byte }

type topics struct {
	mu   sync.RWMutex
	subs map[string]map[*subscriber]struct{}
}

func (t *topics) add(topic string, s *subscriber) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs[topic] == nil {
		t.subs[topic] = map[*subscriber]struct{}{}
	}
	t.subs[topic][s] = struct{}{}
}

func (t *topics) remove(topic string, s *subscriber) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.subs[topic], s)
}

func (t *topics) publish(topic string, msg []byte) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := 0
	for s := range t.subs[topic] {
		select {
		case s.send <- msg:
			n++
		default: // a slow subscriber misses it, as in gorilla's chat example
		}
	}
	return n
}

var hub = topics{subs: map[string]map[*subscriber]struct{}{}}

func subscribe(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s := &subscriber{send: make(chan []byte, 256)}
	hub.add(topic, s)
	done := make(chan struct{})
	go func() { // the one writer
		for {
			select {
			case msg := <-s.send:
				if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
					c.Close()
					return
				}
			case <-done:
				return
			}
		}
	}()
	for { // reads only to see the close
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	hub.remove(topic, s)
	close(done)
	c.Close()
}

func publish(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	n := hub.publish(r.URL.Query().Get("topic"), body)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"delivered\":%d}", n)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "HOST:PORT")
	flag.Parse()
	http.HandleFunc("/ws/sub", subscribe)
	http.HandleFunc("/publish", publish)
	http.HandleFunc("/", echo)
	fmt.Printf("listening on http://%s\n", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
