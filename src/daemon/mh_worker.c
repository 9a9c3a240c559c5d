/* mh_worker: being written (issue 5) */
typedef int mh_worker_placeholder;
