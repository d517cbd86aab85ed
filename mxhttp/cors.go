package mxhttp

import "net/http"

// CORS adds the headers the spec recommends to every client-facing response and answers every
// OPTIONS request itself, without running the endpoint's logic, as the spec requires. HEAD
// joins the recommended methods because media downloads answer it, as spec v1.13 asks of a
// server with methods beyond the recommended set.
func CORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
		if r.Method == http.MethodOptions {
			WriteJSON(w, http.StatusOK, struct{}{})
			return
		}
		next.ServeHTTP(w, r)
	})
}
