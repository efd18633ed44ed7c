#ifndef RESCUEBOX_COPENSSL_SHIM_H
#define RESCUEBOX_COPENSSL_SHIM_H
/* OpenSSL 3 (Debian libssl-dev), linked statically into the release binary.
   Macro-only interfaces exposed as functions. */
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/crypto.h>

/* Starts libssl without reading openssl.cnf (a rescue system has none, and
   a config file could load engines or providers from disk). 1 on success. */
static inline int rb_openssl_init(void) {
    return OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_LOAD_SSL_STRINGS
                            | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
}
static inline long rb_ssl_ctx_set_min_tls12(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}
static inline long rb_ssl_set_sni(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}
static inline uint64_t rb_ssl_option_ignore_unexpected_eof(void) { return SSL_OP_IGNORE_UNEXPECTED_EOF; }
static inline uint64_t rb_ssl_option_no_compression(void) { return SSL_OP_NO_COMPRESSION; }
/* SSL_write may return after part of the buffer; the buffer may move
   between retries (the same bytes, resent from another address). */
static inline long rb_ssl_ctx_set_partial_writes(SSL_CTX *ctx) {
    return SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}
/* The peer's certificate (a new reference: X509_free it). */
static inline X509 *rb_ssl_peer_certificate(const SSL *ssl) { return SSL_get1_peer_certificate(ssl); }
#endif
