// go-http: Go net/http answering the same bytes as keel's hello (SPEC §4).
// Built offline: GO111MODULE=off go build (bench/run).
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "HOST:PORT")
	flag.Parse()
	plaintext := []byte("Hello, World!")
	json := []byte(`{"message":"Hello, World!"}`)
	mux := http.NewServeMux()
	mux.HandleFunc("/plaintext", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(plaintext)
	})
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(json)
	})
	fmt.Printf("listening on http://%s\n", *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}
