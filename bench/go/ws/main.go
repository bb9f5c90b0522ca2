// go-ws: gorilla/websocket echo, written as gorilla's own echo example does
// (one goroutine per connection, ReadMessage/WriteMessage, default buffers).
// Built offline against Debian's golang-github-gorilla-websocket-dev.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"

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

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "HOST:PORT")
	flag.Parse()
	http.HandleFunc("/", echo)
	fmt.Printf("listening on http://%s\n", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
