// Owns the tests' precompiled header (REUSE_FROM needs a target that builds it).
int main() { return 0; }
